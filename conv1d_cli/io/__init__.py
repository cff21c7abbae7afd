"""Reading and writing files: signals, layers' coefficient files and arrays."""
