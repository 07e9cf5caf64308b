//! fi
