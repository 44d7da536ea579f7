//! Compile-fail tests: a security contact point has no path into the matcher.

#[test]
fn security_contact_points_cannot_reach_the_matcher() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
