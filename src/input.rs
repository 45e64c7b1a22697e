//! Turning the paths a user gives into opened inputs: folders walked recursively (like `nfdump -R`), files
//! memory-mapped (or read, with `--no-mmap`), `-` read from standard input.

use crate::engine::{Input, InputError};
use crate::formats::{self, Bytes, Opener};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// How inputs are read.
#[derive(Debug, Clone, Default)]
pub struct InputOptions {
    /// Read files into memory instead of mapping them.
    pub no_mmap: bool,
    /// The reader to use (`--input-format`); the content decides when `None`.
    pub format: Option<formats::detect::Kind>,
}

/// One input to scan: a file, or standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Stdin,
}

impl Source {
    pub fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "<stdin>".to_string(),
        }
    }
}

/// Expand `paths` into files: folders are walked recursively in name order; hidden files and files nfcapd is
/// still writing (`nfcapd.current.*`) are skipped inside folders, as nfdump skips them. Unreadable folders are
/// errors; the rest is still returned.
pub fn expand(paths: &[PathBuf]) -> (Vec<Source>, Vec<InputError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            files.push(Source::Stdin);
        } else if p.is_dir() {
            walk(p, &mut files, &mut errors);
        } else {
            // Missing files are reported when opened, in their place in the order.
            files.push(Source::File(p.clone()));
        }
    }
    (files, errors)
}

fn walk(dir: &Path, files: &mut Vec<Source>, errors: &mut Vec<InputError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(InputError {
                name: dir.display().to_string(),
                message: format!("cannot read folder: {e}"),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name.starts_with("nfcapd.current") {
            continue;
        }
        if p.is_dir() {
            walk(&p, files, errors);
        } else {
            files.push(Source::File(p));
        }
    }
}

/// A read-only memory map of a whole file.
struct MappedFile(memmap2::Mmap);

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl formats::ByteSource for MappedFile {
    fn release(&self, range: std::ops::Range<usize>) {
        // Only whole pages inside the range: a page shared with a neighbouring chunk may still be in use.
        const PAGE: usize = 4096;
        let start = range.start.div_ceil(PAGE) * PAGE;
        let end = (range.end.min(self.0.len()) / PAGE) * PAGE;
        if end > start {
            // SAFETY: the map is read-only and file-backed, so MADV_DONTNEED only drops our mapping of pages that
            // still hold the file's bytes; the next read faults the same bytes back in from the page cache.
            let _ = unsafe {
                self.0.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }
}

/// Read or map a source's bytes.
pub fn load(source: &Source, options: &InputOptions) -> Result<Bytes, InputError> {
    let err = |message: String| InputError {
        name: source.name(),
        message,
    };
    match source {
        Source::Stdin => {
            let mut buf = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .map_err(|e| err(format!("cannot read standard input: {e}")))?;
            Ok(formats::bytes_from_vec(buf))
        }
        Source::File(path) => {
            let mut file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
            if !options.no_mmap {
                // SAFETY: the map is read-only. If another process truncates the file while it is mapped, reads
                // past the new end fault (SIGBUS); nfcapd writes rotated files under a temporary name and renames
                // them when complete, so finished captures are not truncated under us. `--no-mmap` avoids the risk.
                if let Ok(map) = unsafe { memmap2::Mmap::map(&file) } {
                    // Chunks are taken roughly in file order: let the kernel read ahead.
                    let _ = map.advise(memmap2::Advice::Sequential);
                    return Ok(std::sync::Arc::new(MappedFile(map)));
                }
            }
            let mut buf = Vec::new();
            file.read_to_end(&mut buf)
                .map_err(|e| err(format!("cannot read: {e}")))?;
            Ok(formats::bytes_from_vec(buf))
        }
    }
}

/// Load and open one source with the reader its content (or `--input-format`) calls for. `opener` carries
/// NetFlow templates from one input to the next, so it must be the same for all inputs of a run.
pub fn open(source: &Source, options: &InputOptions, opener: &Opener) -> Result<Input, InputError> {
    let err = |e: formats::FormatError| InputError {
        name: source.name(),
        message: e.to_string(),
    };
    let format = options.format.map(formats::detect::Kind::name);
    let decoder = match source {
        // A pipe is read as it comes: flow-tools and CSV stream, other formats are read whole first (with the
        // run's opener, so NetFlow templates from earlier inputs apply).
        Source::Stdin => opener
            .open_stream(Box::new(std::io::stdin()), format)
            .map_err(err)?,
        Source::File(_) => {
            let bytes = load(source, options)?;
            opener.open(bytes, "", format).map_err(err)?
        }
    };
    Ok(Input {
        name: source.name(),
        decoder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_walked_in_order_skipping_hidden_and_current() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("2026/11/26");
        std::fs::create_dir_all(&sub).unwrap();
        for name in [
            "nfcapd.202611260305",
            "nfcapd.202611260300",
            ".hidden",
            "nfcapd.current.1234",
        ] {
            std::fs::write(sub.join(name), b"x").unwrap();
        }
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        let (files, errors) = expand(&[dir.path().to_path_buf()]);
        assert!(errors.is_empty());
        let names: Vec<String> = files
            .iter()
            .map(|s| match s {
                Source::File(p) => p.strip_prefix(dir.path()).unwrap().display().to_string(),
                Source::Stdin => "-".into(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "2026/11/26/nfcapd.202611260300",
                "2026/11/26/nfcapd.202611260305",
                "a"
            ]
        );
    }

    #[test]
    fn missing_files_fail_when_opened_with_their_name() {
        let (files, _) = expand(&[PathBuf::from("/no/such/file")]);
        let e = open(&files[0], &InputOptions::default(), &Opener::new())
            .err()
            .unwrap();
        assert_eq!(e.name, "/no/such/file");
        assert!(e.message.contains("cannot open"), "{}", e.message);
    }

    #[test]
    fn mmap_and_read_give_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello flows").unwrap();
        let s = Source::File(p);
        let mmap = InputOptions::default();
        let read = InputOptions {
            no_mmap: true,
            ..InputOptions::default()
        };
        let a = load(&s, &mmap).unwrap();
        let b = load(&s, &read).unwrap();
        assert_eq!((*a).as_ref(), (*b).as_ref());
    }
}
