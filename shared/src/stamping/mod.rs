//! The PDF stamping engine (to be built: stamping-engine issue).
