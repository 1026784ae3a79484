"""riskalign."""
