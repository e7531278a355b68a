"""The riffd daemon: resident models, scheduler, OSC and ZeroMQ endpoints, audio sinks."""
