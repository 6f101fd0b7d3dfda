//! The web server of a lab node (public: a node daemon that starts nginx itself calls [`prepare`]): Debian's nginx with a config of its own under the node's directory (pid, logs,
//! temporary files all inside it, so nodes share no state) serving the guide's test page.

use std::path::Path;

use super::LabError;
use super::daemon::DaemonCommand;

/// The guide's test page for `node` ("Test page served from ha1").
pub fn page(node: &str) -> String {
    format!(
        "<html>\n<head>\n<title>Test page served from {node}</title>\n</head>\n<body>\n\
         <h1>Test page served from {node}</h1>\n</body>\n</html>\n"
    )
}

/// nginx's config for a node whose tree is `dir`: listens on 0.0.0.0:80, every path inside `dir`.
pub fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "# Written by hactl lab: this node's own nginx; every path is inside {d}.\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/log/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20   types {{ text/html html; }}\n\
         \x20   default_type text/html;\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path {d}/tmp/body;\n\
         \x20   proxy_temp_path {d}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {d}/tmp/scgi;\n\
         \x20   server {{\n\
         \x20       listen 0.0.0.0:80;\n\
         \x20       root {d}/www;\n\
         \x20       index index.html;\n\
         \x20   }}\n\
         }}\n"
    )
}

/// Writes the node's nginx config, page and directories; returns the command that runs nginx in the
/// foreground (`-e` sets the error log before the config is read, so nothing goes to /var/log/nginx).
pub fn prepare(node: &str, dir: &Path) -> Result<DaemonCommand, LabError> {
    for sub in ["www", "log", "tmp"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).map_err(LabError::io(&path))?;
    }
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir)).map_err(LabError::io(&conf))?;
    let index = dir.join("www/index.html");
    std::fs::write(&index, page(node)).map_err(LabError::io(&index))?;
    let s = |p: &Path| p.display().to_string();
    Ok(DaemonCommand {
        label: "nginx".into(),
        argv: vec![
            "nginx".into(),
            "-c".into(),
            s(&conf),
            "-e".into(),
            s(&dir.join("log/error.log")),
            "-g".into(),
            "daemon off;".into(),
        ],
        env: Vec::new(),
        log: dir.join("log/nginx.out"),
        run_files: vec![dir.join("nginx.pid")],
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn page_names_the_node() {
        assert!(page("ha2").contains("<h1>Test page served from ha2</h1>"));
    }

    #[test]
    fn nginx_paths_stay_in_the_node_tree() {
        let conf = nginx_conf(Path::new("/run/hactl-lab/t/ha1"));
        let paths: Vec<&str> = conf.split_whitespace().filter(|w| w.starts_with('/')).collect();
        assert!(paths.len() >= 8, "{conf}");
        for path in paths {
            assert!(path.starts_with("/run/hactl-lab/t/ha1"), "path outside the node tree: {path}");
        }
        assert!(conf.contains("listen 0.0.0.0:80;"));
    }
}
