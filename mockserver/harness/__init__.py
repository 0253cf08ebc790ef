"""What a test suite touches: the in-process server (`MockServer`), a mock in another process
(`RemoteMock`) and the pytest plugin."""
