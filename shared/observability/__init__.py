"""What a service tells operators: Prometheus series and JSON logs."""
