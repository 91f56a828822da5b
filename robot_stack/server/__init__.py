"""Policy serving: wire schema, ZeroMQ transport, observation assembly and receding-horizon execution."""
