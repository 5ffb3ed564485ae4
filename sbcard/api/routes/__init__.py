"""The routes of ``/api/v1``, one module per capability, each thin over the use cases."""
