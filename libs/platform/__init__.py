"""Platform glue shared by every job: settings, the Spark session factory, Delta I/O, the CLI."""
