"""The HTTP surface: the route table, the path every API request takes, the endpoints of mock and
proxy mode, the admin routes and page, body reading, CORS, the OpenAPI document, and the one
module that knows uvicorn (`uvicorn_glue`)."""
