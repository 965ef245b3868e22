"""`python -m diarist.cli ...`: how `diarist up` and the tests start the service's processes."""
from diarist.cli.main import main

main()
