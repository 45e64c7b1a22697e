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
    /// A file named on the command line: read whatever it holds (not a flow file is an error).
    File(PathBuf),
    /// A file found walking a folder: skipped when it is not a flow file ([`is_foreign`]), as `nfdump -R` does.
    InFolder(PathBuf),
    Stdin,
}

impl Source {
    pub fn name(&self) -> String {
        match self {
            Source::File(p) | Source::InFolder(p) => p.display().to_string(),
            Source::Stdin => "<stdin>".to_string(),
        }
    }

    /// The file's path; `None` for standard input.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::File(p) | Source::InFolder(p) => Some(p),
            Source::Stdin => None,
        }
    }

    /// The file's size when it is a regular file.
    pub fn size(&self) -> Option<u64> {
        let m = std::fs::metadata(self.path()?).ok()?;
        m.is_file().then_some(m.len())
    }
}

/// Whether the file at `path` is not a flow file: its first 4 KiB show no format any reader is for
/// ([`formats::detect::foreign`]). False when it cannot be read: that error is the one to tell.
pub fn is_foreign(path: &Path) -> bool {
    let mut head = Vec::with_capacity(4096);
    match File::open(path) {
        Ok(f) => f.take(4096).read_to_end(&mut head).is_ok() && formats::detect::foreign(&head),
        Err(_) => false,
    }
}

/// What expanding the paths a user gave found.
#[derive(Debug, Default)]
pub struct Expanded {
    pub sources: Vec<Source>,
    /// Folders that could not be read.
    pub errors: Vec<InputError>,
    /// Entries of folders that are neither files nor folders (FIFOs, sockets, devices): not read. A FIFO nobody
    /// writes to would block the scan forever.
    pub not_regular: Vec<PathBuf>,
    /// Folders and files reached a second time through links (`a -> .`): read once, as `nfdump -R` does.
    pub seen_again: Vec<PathBuf>,
}

impl Expanded {
    /// One line for each kind of entry passed over, naming the first and counting the rest.
    pub fn notes(&self) -> Vec<String> {
        let say = |v: &[PathBuf], what: &str| {
            v.first().map(|p| {
                format!(
                    "{} {what} in folders not read (first: {})",
                    v.len(),
                    p.display()
                )
            })
        };
        [
            say(
                &self.not_regular,
                "entries that are not regular files (FIFOs, sockets, devices)",
            ),
            say(
                &self.seen_again,
                "folders or files reached again through links",
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Expand `paths` into inputs: folders are walked recursively in name order; hidden files and files nfcapd is
/// still writing (`nfcapd.current.*`) are skipped inside folders, as nfdump skips them, and so are entries that
/// are not regular files and anything reached again through links. Paths named explicitly are read whatever they
/// are (a FIFO, `/dev/stdin`, a process substitution). Unreadable folders are errors; the rest is still returned.
pub fn expand_paths(paths: &[PathBuf]) -> Expanded {
    let mut out = Expanded::default();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.sources.push(Source::Stdin);
        } else if p.is_dir() {
            walk(p, &mut seen, &mut out);
        } else {
            // Missing files are reported when opened, in their place in the order.
            out.sources.push(Source::File(p.clone()));
        }
    }
    out
}

/// [`expand_paths`] without the notes on what was passed over.
pub fn expand(paths: &[PathBuf]) -> (Vec<Source>, Vec<InputError>) {
    let e = expand_paths(paths);
    (e.sources, e.errors)
}

/// The identity of a file or folder, whatever the path that reached it.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

fn walk(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>, out: &mut Expanded) {
    let error = |message: String| InputError {
        name: dir.display().to_string(),
        message,
    };
    // A folder already walked (a link back up the tree, two links to one place) is not walked again.
    match std::fs::metadata(dir) {
        Ok(m) if !seen.insert(identity(&m)) => {
            out.seen_again.push(dir.to_path_buf());
            return;
        }
        Ok(_) => {}
        Err(e) => {
            out.errors.push(error(format!("cannot read folder: {e}")));
            return;
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.errors.push(error(format!("cannot read folder: {e}")));
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
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, seen, out),
            Ok(m) if m.is_file() => {
                if seen.insert(identity(&m)) {
                    out.sources.push(Source::InFolder(p));
                } else {
                    out.seen_again.push(p);
                }
            }
            Ok(_) => out.not_regular.push(p),
            // A dangling link or a link loop (ELOOP): reported when opened, with the system's reason.
            Err(_) => out.sources.push(Source::InFolder(p)),
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

/// Read or map a source's bytes: regular files are mapped (or read, with `--no-mmap`), other sources read as
/// streams, at most [`formats::MAX_BUFFERED`] bytes.
pub fn load(source: &Source, options: &InputOptions) -> Result<Bytes, InputError> {
    let err = |message: String| InputError {
        name: source.name(),
        message,
    };
    let bounded = |r: &mut dyn Read, what: &str| {
        let mut buf = Vec::new();
        r.take(formats::MAX_BUFFERED + 1)
            .read_to_end(&mut buf)
            .map_err(|e| err(format!("cannot read {what}: {e}")))?;
        if buf.len() as u64 > formats::MAX_BUFFERED {
            return Err(err(format!(
                "more than {} MiB: too large to read into memory",
                formats::MAX_BUFFERED >> 20
            )));
        }
        Ok(formats::bytes_from_vec(buf))
    };
    match source {
        Source::Stdin => bounded(&mut std::io::stdin().lock(), "standard input"),
        Source::File(path) | Source::InFolder(path) => {
            let file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
            let regular = file.metadata().is_ok_and(|m| m.is_file());
            if regular && !options.no_mmap {
                if let Some(map) = map(&file) {
                    return Ok(map);
                }
            }
            if !regular {
                return bounded(&mut &file, "it");
            }
            let mut buf = Vec::new();
            (&file)
                .read_to_end(&mut buf)
                .map_err(|e| err(format!("cannot read: {e}")))?;
            Ok(formats::bytes_from_vec(buf))
        }
    }
}

/// A memory map of `file`, told that it will be read roughly in order; None when the file cannot be mapped.
fn map(file: &File) -> Option<Bytes> {
    // SAFETY: the map is read-only. If another process truncates the file while it is mapped, reads past the new
    // end fault (SIGBUS); nfcapd writes rotated files under a temporary name and renames them when complete, so
    // finished captures are not truncated under us. `--no-mmap` avoids the risk.
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    // Chunks are taken roughly in file order: let the kernel read ahead.
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(std::sync::Arc::new(MappedFile(map)))
}

/// Open one source with the reader its content (or `--input-format`) calls for. Regular files are memory-mapped
/// (`--no-mmap`: read a block or chunk at a time); standard input, FIFOs and devices are read as streams. `opener`
/// carries NetFlow templates from one input to the next, so it must be the same for all inputs of a run.
pub fn open(source: &Source, options: &InputOptions, opener: &Opener) -> Result<Input, InputError> {
    let err = |message: String| InputError {
        name: source.name(),
        message,
    };
    let format = options.format.map(formats::detect::Kind::name);
    let mut bytes = 0;
    let decoder = match source {
        // A pipe is read as it comes (with the run's opener, so NetFlow templates from earlier inputs apply).
        Source::Stdin => opener.open_stream(Box::new(std::io::stdin()), format),
        Source::File(path) | Source::InFolder(path) => {
            let file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
            let meta = file
                .metadata()
                .map_err(|e| err(format!("cannot read: {e}")))?;
            if meta.is_dir() {
                return Err(err("is a folder".into()));
            }
            if meta.is_file() {
                bytes = meta.len();
            }
            let mapped = (meta.is_file() && !options.no_mmap)
                .then(|| map(&file))
                .flatten();
            match mapped {
                Some(bytes) => opener.open(bytes, "", format),
                None if meta.is_file() => opener.open_unmapped(file, format),
                None => opener.open_stream(Box::new(file), format),
            }
        }
    }
    .map_err(|e| err(e.to_string()))?;
    Ok(Input {
        name: source.name(),
        decoder,
        bytes,
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
            .map(|s| match s.path() {
                Some(p) => p.strip_prefix(dir.path()).unwrap().display().to_string(),
                None => "-".into(),
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
    fn links_back_up_the_tree_and_special_files_are_passed_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("f"), b"x").unwrap();
        std::os::unix::fs::symlink(".", d.join("a")).unwrap();
        std::os::unix::fs::symlink(".", d.join("b")).unwrap();
        std::os::unix::fs::symlink("f", d.join("g")).unwrap();
        std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
        let fifo = d.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let e = expand_paths(&[d.to_path_buf()]);
        let names: Vec<String> = (e.sources.iter())
            .map(|s| s.name().rsplit('/').next().unwrap().to_string())
            .collect();
        // f once; the self-link `loop` is left to fail when opened (ELOOP), with its name.
        assert_eq!(names, ["f", "loop"]);
        assert_eq!(e.not_regular, [fifo]);
        assert_eq!(e.seen_again.len(), 3, "{:?}", e.seen_again);
        let notes = e.notes();
        assert_eq!(notes.len(), 2);
        assert!(
            notes[0].starts_with("1 entries that are not regular files"),
            "{notes:?}"
        );
        assert!(
            notes[1].starts_with("3 folders or files reached again"),
            "{notes:?}"
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
