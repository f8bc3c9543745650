//! Test support for frozen C layouts: collect C expressions (`sizeof`, `offsetof`,
//! constants) with the value the Rust side has for each, compile one C program that prints
//! them all against the real headers, and fail with every mismatch listed.
//!
//! ```ignore
//! let mut probe = c_layout::Probe::new(&["xen/xen.h"]);
//! c_layout::layout!(probe, StartInfo = "struct start_info" { nr_pages => "nr_pages" });
//! probe.constant("MAX_GUEST_CMDLINE", MAX_GUEST_CMDLINE as u64);
//! probe.assert_matches();
//! ```
//!
//! The reference headers are Debian's libxen-dev (`/usr/include/xen`); a missing header is
//! reported as such ("install libxen-dev"), not as a compile error. The compiler is `$CC`
//! or `cc`.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// C expressions and the Rust values they must equal.
pub struct Probe {
    includes: Vec<String>,
    prelude: String,
    checks: Vec<(String, u64)>,
}

impl Probe {
    /// A probe including `<stdint.h>`, `<stddef.h>`, `<stdio.h>` and then `headers`
    /// (paths below `/usr/include`, e.g. `"xen/io/ring.h"`), in order.
    pub fn new(headers: &[&str]) -> Probe {
        Probe {
            includes: headers.iter().map(|h| h.to_string()).collect(),
            prelude: String::new(),
            checks: Vec::new(),
        }
    }

    /// C declarations placed after the includes (e.g. a ring type defined with a macro).
    pub fn prelude(&mut self, c: &str) -> &mut Self {
        self.prelude.push_str(c);
        self.prelude.push('\n');
        self
    }

    /// `c_expr` (any integer C expression) must equal `rust`.
    pub fn check(&mut self, c_expr: impl Into<String>, rust: u64) -> &mut Self {
        self.checks.push((c_expr.into(), rust));
        self
    }

    /// `constant` (a C macro or enumerator) must equal `rust`.
    pub fn constant(&mut self, constant: &str, rust: u64) -> &mut Self {
        self.check(constant, rust)
    }

    /// Compile and run the probe; panic listing every expression whose C value differs.
    pub fn assert_matches(&self) {
        // Xen's headers are the reference and come from libxen-dev: say so when one is
        // missing. System headers (possibly under a multiarch directory) are the
        // compiler's business.
        for h in self.includes.iter().filter(|h| h.starts_with("xen/")) {
            let path = Path::new("/usr/include").join(h);
            assert!(
                path.exists(),
                "{} is missing: install Debian's libxen-dev (cargo xtask setup does)",
                path.display()
            );
        }
        let c_values = self.run();
        assert_eq!(
            c_values.len(),
            self.checks.len(),
            "the probe printed {} values for {} checks",
            c_values.len(),
            self.checks.len()
        );
        let mismatches: Vec<String> = self
            .checks
            .iter()
            .zip(&c_values)
            .filter(|((_, rust), c)| rust != *c)
            .map(|((expr, rust), c)| format!("{expr}: C says {c}, Rust has {rust}"))
            .collect();
        assert!(
            mismatches.is_empty(),
            "layout mismatches against the C headers:\n{}",
            mismatches.join("\n")
        );
    }

    fn source(&self) -> String {
        let mut src =
            String::from("#include <stdint.h>\n#include <stddef.h>\n#include <stdio.h>\n");
        for h in &self.includes {
            src.push_str(&format!("#include <{h}>\n"));
        }
        src.push_str(&self.prelude);
        src.push_str("int main(void) {\n");
        for (expr, _) in &self.checks {
            src.push_str(&format!(
                "    printf(\"%llu\\n\", (unsigned long long)({expr}));\n"
            ));
        }
        src.push_str("    return 0;\n}\n");
        src
    }

    fn run(&self) -> Vec<u64> {
        static PROBES: AtomicUsize = AtomicUsize::new(0);
        let n = PROBES.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("c-layout-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir for the probe");
        let (c_file, exe) = (dir.join("probe.c"), dir.join("probe"));
        std::fs::write(&c_file, self.source()).expect("write the probe");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .args([
                "-std=gnu11",
                "-D__XEN_INTERFACE_VERSION__=__XEN_LATEST_INTERFACE_VERSION__",
            ])
            .arg(&c_file)
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` ({e}): install gcc"));
        assert!(
            out.status.success(),
            "compiling the layout probe failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Command::new(&exe).output().expect("run the probe");
        assert!(run.status.success(), "the probe failed: {}", run.status);
        let _ = std::fs::remove_dir_all(&dir);
        String::from_utf8(run.stdout)
            .expect("probe output is text")
            .lines()
            .map(|l| l.parse().expect("probe prints numbers"))
            .collect()
    }
}

/// `layout!(probe, RustType = "c type" { rust_field => "c.field", ... })`: the size of the
/// type and the offset of every listed field.
#[macro_export]
macro_rules! layout {
    ($probe:expr, $rust:ty = $c:literal { $($field:ident => $cfield:literal),* $(,)? }) => {{
        $probe.check(format!("sizeof({})", $c), ::core::mem::size_of::<$rust>() as u64);
        $($probe.check(format!("offsetof({}, {})", $c, $cfield), ::core::mem::offset_of!($rust, $field) as u64);)*
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_c_compiler_and_reports_mismatches() {
        let mut probe = Probe::new(&[]);
        probe.prelude("struct pair { uint8_t a; uint32_t b; };");
        probe
            .check("sizeof(struct pair)", 8)
            .check("offsetof(struct pair, b)", 4)
            .constant("UINT16_MAX", 65535);
        probe.assert_matches();
        let mut wrong = Probe::new(&[]);
        wrong.check("sizeof(uint64_t)", 4);
        let failure =
            std::panic::catch_unwind(|| wrong.assert_matches()).expect_err("a mismatch must fail");
        let message = failure
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            message.contains("sizeof(uint64_t): C says 8, Rust has 4"),
            "{message}"
        );
    }
}
