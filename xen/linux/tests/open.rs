//! Opening the platform where it cannot work gives a typed error that says why.

use std::path::Path;

use xen_linux::{LinuxPlatform, OpenError};

#[test]
fn outside_a_tokio_runtime_is_a_typed_error() {
    let e = LinuxPlatform::open().unwrap_err();
    assert!(matches!(e, OpenError::NoRuntime { .. }), "{e}");
    assert!(e.to_string().contains("tokio runtime"));
}

#[tokio::test]
async fn without_xen_devices_the_error_names_the_missing_device() {
    match LinuxPlatform::open() {
        Err(OpenError::NotInXenDomain { device }) => {
            assert!(!device.exists());
            assert!(device.starts_with("/dev/xen"));
        }
        // On a Xen domain (devices present) as root, opening works.
        Ok(_) => assert!(Path::new("/dev/xen/evtchn").exists()),
        Err(e) => assert!(Path::new("/dev/xen/evtchn").exists(), "{e}"),
    }
}
