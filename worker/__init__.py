"""Worker assembly and entry point; the embedded dev-server launcher."""
