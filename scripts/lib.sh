# Shell helpers shared by scripts/ and bench/ (POSIX sh, sourced, not run).
# They expect $python to name a python3.

# Exit 0 when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  "$python" -c '
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()
except OSError:
    sys.exit(1)
' "$1"
}
