//! `irmin-store`: command-line access to a store kept in a Git repository.
//!
//! ```text
//! irmin-store [--repo DIR] [--branch NAME] [--no-fsync] COMMAND ...
//!   init                       create a bare repository at --repo
//!   get KEY                    print the value at KEY
//!   set KEY VALUE [-m MSG]     set KEY (VALUE "-" reads stdin) and commit
//!   remove KEY [-m MSG]        remove KEY (or a whole node) and commit
//!   ls [PATH]                  list the children of PATH
//!   log [-n N] [PATH]          history of the branch (or of PATH)
//!   diff REV [REV2]            changes from REV to REV2 (default: the branch)
//!   branch                     list branches
//!   branch NAME [REV]          create a branch at REV (default: the branch)
//!   branch -d NAME             delete a branch
//!   merge REV [--strategy S]   merge REV into the branch (S: strict, lww, counter, set)
//!   fetch URL [--remote NAME]  fetch branches into refs/remotes/NAME/
//!   pull URL [--remote NAME] [--strategy S]
//!   push URL [--force]         push the branch
//!   gc                         pack all reachable objects
//! ```
//! The repository defaults to `$IRMIN_STORE_REPO` or `.`; the author to
//! `$IRMIN_AUTHOR_NAME` / `$IRMIN_AUTHOR_EMAIL`.

use std::io::{Read, Write};
use std::process::ExitCode;

use irmin_store::backend::disk::{Durability, GitDir};
use irmin_store::merge::{Counter, LastWriterWins, LineSet, MergeFn, Strict};
use irmin_store::{
    ChangeKind, CommitInfo, EntryKind, Error, MergeOutcome, Repo, Signature, remote,
};

struct Opts {
    repo: String,
    branch: Option<String>,
    durability: Durability,
    args: Vec<String>,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: irmin-store [--repo DIR] [--branch NAME] [--no-fsync] \
         (init|get|set|remove|ls|log|diff|branch|merge|fetch|pull|push|gc) ..."
    );
    ExitCode::from(2)
}

fn parse_opts() -> Option<Opts> {
    let mut it = std::env::args().skip(1);
    let mut o = Opts {
        repo: std::env::var("IRMIN_STORE_REPO").unwrap_or_else(|_| ".".into()),
        branch: None,
        durability: Durability::Fsync,
        args: Vec::new(),
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--repo" => o.repo = it.next()?,
            "--branch" | "-b" if o.args.is_empty() => o.branch = Some(it.next()?),
            "--no-fsync" => o.durability = Durability::Process,
            "-h" | "--help" => return None,
            _ => o.args.push(a),
        }
    }
    if o.args.is_empty() { None } else { Some(o) }
}

/// Take `--flag VALUE` out of `args`.
fn take_flag(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let i = args.iter().position(|a| a == flag)?;
    if i + 1 >= args.len() {
        return None;
    }
    let v = args.remove(i + 1);
    args.remove(i);
    Some(v)
}

fn take_switch(args: &mut Vec<String>, flag: &str) -> bool {
    match args.iter().position(|a| a == flag) {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    }
}

fn commit_info(msg: Option<String>, default: &str) -> Result<CommitInfo, Error> {
    let name = std::env::var("IRMIN_AUTHOR_NAME").unwrap_or_else(|_| "irmin-store".into());
    let email =
        std::env::var("IRMIN_AUTHOR_EMAIL").unwrap_or_else(|_| "irmin-store@localhost".into());
    Ok(CommitInfo::new(
        Signature::now(&name, &email)?,
        &msg.unwrap_or_else(|| default.to_string()),
    ))
}

fn strategy(name: Option<String>) -> Result<Box<dyn MergeFn>, Error> {
    Ok(match name.as_deref() {
        None | Some("strict") => Box::new(Strict),
        Some("lww") => Box::new(LastWriterWins),
        Some("counter") => Box::new(Counter),
        Some("set") => Box::new(LineSet),
        Some(other) => return Err(Error::Protocol(format!("unknown strategy {other:?}"))),
    })
}

fn print_merge(out: MergeOutcome) -> Result<u8, Error> {
    match out {
        MergeOutcome::UpToDate => println!("already up to date"),
        MergeOutcome::FastForward(id) => println!("fast-forward to {id}"),
        MergeOutcome::Merged(id) => println!("merged: {id}"),
        MergeOutcome::Conflicts(p) => {
            for c in p.conflicts() {
                println!("CONFLICT {}: {}", c.path, c.reason);
            }
            println!("merge not committed: choose another --strategy or change the values");
            return Ok(1);
        }
    }
    Ok(0)
}

fn run(mut o: Opts) -> Result<u8, Error> {
    let cmd = o.args.remove(0);
    if cmd == "init" {
        GitDir::init_bare(&o.repo, o.durability)?;
        println!("initialized empty store in {}", o.repo);
        return Ok(0);
    }
    let mut repo = Repo::new(GitDir::open(&o.repo, o.durability)?);
    let branch = match o.branch.clone() {
        Some(b) => b,
        None => repo.current_branch()?.unwrap_or_else(|| "main".into()),
    };
    let args = &mut o.args;
    let msg = take_flag(args, "-m");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match (cmd.as_str(), args.len()) {
        ("get", 1) => match repo.get(&branch, &args[0])? {
            Some(v) => out.write_all(&v)?,
            None => {
                eprintln!("{}: not found", args[0]);
                return Ok(1);
            }
        },
        ("set", 2) => {
            let value = if args[1] == "-" {
                let mut v = Vec::new();
                std::io::stdin().read_to_end(&mut v)?;
                v
            } else {
                args[1].clone().into_bytes()
            };
            let info = commit_info(msg, &format!("set {}", args[0]))?;
            let id = repo.set(&branch, &args[0], &value, &info)?;
            writeln!(out, "{id}")?;
        }
        ("remove", 1) => {
            let info = commit_info(msg, &format!("remove {}", args[0]))?;
            writeln!(out, "{}", repo.remove(&branch, &args[0], &info)?)?;
        }
        ("ls", 0 | 1) => {
            let path = args.first().map(String::as_str).unwrap_or("");
            for (name, kind) in repo.list(&branch, path)? {
                let suffix = if kind == EntryKind::Node { "/" } else { "" };
                writeln!(out, "{name}{suffix}")?;
            }
        }
        ("log", _) => {
            let n = take_flag(args, "-n")
                .and_then(|s| s.parse().ok())
                .unwrap_or(usize::MAX);
            let Some(head) = repo.branch_head(&branch)? else {
                return Ok(0);
            };
            let commits = match args.first() {
                Some(path) => repo.history(head, path, n)?,
                None => repo.log(head, n)?,
            };
            for (id, c) in commits {
                let first = c.message_str().lines().next().unwrap_or("").to_string();
                writeln!(out, "{id} {} {} {first}", c.committer.time, c.author.name)?;
            }
        }
        ("diff", 1 | 2) => {
            let from = repo.resolve(&args[0])?;
            let to = match args.get(1) {
                Some(r) => repo.resolve(r)?,
                None => repo.resolve(&branch)?,
            };
            for c in repo.diff(Some(&from), &to)? {
                let tag = match c.kind() {
                    ChangeKind::Added => "A",
                    ChangeKind::Removed => "D",
                    ChangeKind::Modified => "M",
                };
                writeln!(out, "{tag}\t{}", c.path)?;
            }
        }
        ("branch", 0) => {
            for (name, id) in repo.branches()? {
                let mark = if name == branch { "*" } else { " " };
                writeln!(out, "{mark} {name} {id}")?;
            }
        }
        ("branch", 2) if args[0] == "-d" => {
            let cur = repo
                .branch_head(&args[1])?
                .ok_or_else(|| Error::RefNotFound(args[1].clone()))?;
            repo.set_branch(&args[1], Some(cur), None)?;
        }
        ("branch", 1 | 2) => {
            let at = repo.resolve(args.get(1).unwrap_or(&branch))?;
            repo.set_branch(&args[0], None, Some(at))?;
        }
        ("merge", _) => {
            let f = strategy(take_flag(args, "--strategy"))?;
            let Some(rev) = args.first() else {
                return Err(Error::Protocol("merge needs a revision".into()));
            };
            let theirs = repo.resolve(rev)?;
            let info = commit_info(msg, &format!("merge {rev} into {branch}"))?;
            return print_merge(repo.merge_into(&branch, &theirs, &*f, &info)?);
        }
        ("fetch", _) => {
            let name = take_flag(args, "--remote").unwrap_or_else(|| "origin".into());
            let Some(url) = args.first() else {
                return Err(Error::Protocol("fetch needs a URL".into()));
            };
            let r = remote::fetch(&mut repo, url, &name)?;
            writeln!(out, "{} objects, {} refs", r.objects, r.refs.len())?;
        }
        ("pull", _) => {
            let name = take_flag(args, "--remote").unwrap_or_else(|| "origin".into());
            let f = strategy(take_flag(args, "--strategy"))?;
            let Some(url) = args.first() else {
                return Err(Error::Protocol("pull needs a URL".into()));
            };
            let info = commit_info(msg, &format!("merge {name}/{branch}"))?;
            return print_merge(remote::pull(&mut repo, url, &name, &branch, &*f, &info)?);
        }
        ("push", _) => {
            let force = take_switch(args, "--force");
            let Some(url) = args.first() else {
                return Err(Error::Protocol("push needs a URL".into()));
            };
            remote::push(&mut repo, url, &branch, force)?;
        }
        ("gc", 0) => {
            let s = repo.backend_mut().repack()?;
            writeln!(
                out,
                "packed {} objects into {} bytes, removed {} loose",
                s.objects, s.pack_bytes, s.loose_removed
            )?;
        }
        _ => return Ok(2),
    }
    Ok(0)
}

fn main() -> ExitCode {
    let Some(opts) = parse_opts() else {
        return usage();
    };
    match run(opts) {
        Ok(2) => usage(),
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("irmin-store: {e}");
            ExitCode::from(1)
        }
    }
}
