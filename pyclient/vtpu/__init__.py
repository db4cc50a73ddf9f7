"""vTPU client."""
