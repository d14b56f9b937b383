//! Store-directory layout, manifests and publication (see ARCHITECTURE.md).
