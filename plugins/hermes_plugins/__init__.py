"""Built-in plugins of hermes-core, registered through the ``hermes`` entry-point group."""
