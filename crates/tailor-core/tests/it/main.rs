//! Integration tests of the identifier layer: public vectors, conformance tables and properties.

mod properties;
mod vectors;
