"""The visit-based model (DESIGN section 4): its protocol schema, lookup tables and kernel."""
