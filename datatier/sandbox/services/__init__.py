"""One class per kind of sandbox server, all behind :class:`SandboxService`."""
