"""One mock's parts, built once at start-up (`state.MockState`), and the test-facing API written
once over a transport (`api`): the in-process state is one transport, a mock's admin routes
another."""
