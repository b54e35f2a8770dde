//! The cluster file: parsing, the validated model, and `tr7 validate` / `tr7 schema`.
