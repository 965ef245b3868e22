"""`python -m diarist.schemas`: release the schemas that changed (see registry.release_changed)."""
from diarist.schemas.registry import release_changed

for release in release_changed():
    print(f"released {release.name} v{release.version} as schema id {release.schema_id}")
