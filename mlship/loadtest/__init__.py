"""``mlship loadtest``: open-model load tests of any serving target, before it takes real traffic."""
