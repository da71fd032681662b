package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// startNginx starts nginx on port, serving a 1 KiB file for wrk.
func (b *bench) startNginx(port int) error {
	www := b.path("www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(www, "1k"), []byte(strings.Repeat("x", 1024)), 0o644); err != nil {
		return err
	}
	conf := fmt.Sprintf(`user root;
worker_processes %d;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/nginx.err warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
http {
  access_log off;
  client_body_temp_path %[2]s/cbt; proxy_temp_path %[2]s/pt; fastcgi_temp_path %[2]s/ft;
  uwsgi_temp_path %[2]s/ut; scgi_temp_path %[2]s/st;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:%[3]d backlog=4096;
    root %[4]s;
    location / { }
  }
}
`, *nginxProcs, b.dir, port, www)
	if err := os.WriteFile(b.path("nginx.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	_, err := b.start("nginx", "server", nil, "-p", b.dir, "-c", b.path("nginx.conf"), "-e", b.path("nginx.err"))
	return err
}
