"""Built-in probe: DICOM C-ECHO (and optional C-FIND) of a PACS node."""
