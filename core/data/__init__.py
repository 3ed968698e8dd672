"""What comes in and how it is read back: corpus and taxonomy files, importers, reports, the catalog, the demo."""
