"""DICOM helpers: DICOM JSON access, name-based UIDs, tag/keyword handling."""
