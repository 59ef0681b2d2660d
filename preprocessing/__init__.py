"""Videos and images in, 224x224 face crops and a crop manifest out (``forensics preprocess``)."""
