"""Code both sides of diavo use: instrument facts, mask planes, bands, dataset ids, PSF model."""
