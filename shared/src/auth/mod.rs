//! Who is calling.

pub mod local_jwt;
