"""The Starlette edge: the native API, the vendor facades, status views, OpenAPI and authentication."""
