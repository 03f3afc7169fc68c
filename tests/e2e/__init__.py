"""Black-box tests: a hub started as `make run` starts it, driven over HTTP and `manage.py`."""
