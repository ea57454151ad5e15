//! Bad input and an unreachable target: one line on stderr naming the problem, a non-zero
//! exit, nothing on stdout.

use crate::common::{free_port, loadgen, scenario_file, stderr};

fn assert_one_line_error(output: &std::process::Output, code: i32, expected: &str) {
    assert_eq!(output.status.code(), Some(code), "{}", stderr(output));
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let errors = stderr(output);
    assert_eq!(errors.lines().count(), 1, "{errors}");
    assert!(errors.starts_with("loadgen: "), "{errors}");
    assert!(
        errors.contains(expected),
        "expected {expected:?} in {errors}"
    );
}

#[test]
fn a_refused_connection_is_named_and_exits_3() {
    let target = format!("http://127.0.0.1:{}", free_port());
    let output = loadgen(&["--target", &target, "--duration", "1s"], &[]);
    assert_one_line_error(&output, 3, &format!("cannot connect to {target}"));
    assert!(stderr(&output).contains("refused"));
}

#[test]
fn an_unresolvable_target_exits_3() {
    let output = loadgen(
        &["--target", "http://no-such-host.invalid:80", "--json"],
        &[],
    );
    assert_one_line_error(&output, 3, "cannot resolve http://no-such-host.invalid:80");
}

#[test]
fn a_bad_scenario_file_exits_2_naming_file_and_problem() {
    let path = scenario_file(
        "bad",
        "[[journey]]\nname = \"j\"\nweight = 1\nsteps = [\"fly\"]\n",
    );
    let output = loadgen(&["--scenario", path.to_str().unwrap()], &[]);
    assert_one_line_error(&output, 2, "unknown step \"fly\"");
    assert!(stderr(&output).contains(&format!("invalid scenario file {}", path.display())));

    let syntax = scenario_file("syntax", "think = \n");
    let output = loadgen(&["--scenario", syntax.to_str().unwrap()], &[]);
    assert_one_line_error(&output, 2, "line 1");

    let output = loadgen(&["--scenario", "/no/such/scenario.toml"], &[]);
    assert_one_line_error(
        &output,
        2,
        "cannot read scenario file /no/such/scenario.toml",
    );
}

#[test]
fn an_invalid_threshold_or_argument_exits_2_before_connecting() {
    // Nothing listens on the target: the input is refused before any connection is tried.
    let target = format!("http://127.0.0.1:{}", free_port());
    let output = loadgen(&["--target", &target, "--threshold", "p99<soon"], &[]);
    assert_one_line_error(&output, 2, "invalid threshold \"p99<soon\"");
    let output = loadgen(
        &["--target", &target, "--threshold", "GET /nowhere:p99<1s"],
        &[],
    );
    assert_one_line_error(&output, 2, "is not one of the scenario's");
    let output = loadgen(&["--target", &target, "--rate", "5", "--users", "5"], &[]);
    assert_one_line_error(&output, 2, "exclude each other");
    let output = loadgen(&["--target", "https://example.com"], &[]);
    assert_one_line_error(&output, 2, "https is not supported");
}

#[test]
fn help_and_the_built_in_scenario_print_and_exit_0() {
    let help = loadgen(&["--help"], &[]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--target",
        "--rate",
        "--users",
        "--duration",
        "--requests",
        "--scenario",
        "--json",
        "--threshold",
    ] {
        assert!(text.contains(option), "{option} in {text}");
    }
    let scenario = loadgen(&["--print-scenario"], &[]);
    assert!(scenario.status.success());
    let text = String::from_utf8_lossy(&scenario.stdout);
    assert!(text.contains("[[journey]]"), "{text}");
    // What it prints is a valid scenario file.
    let path = scenario_file("printed", &text);
    let target = format!("http://127.0.0.1:{}", free_port());
    let output = loadgen(
        &["--target", &target, "--scenario", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(
        output.status.code(),
        Some(3),
        "parsed, then refused at connect: {}",
        stderr(&output)
    );
}
