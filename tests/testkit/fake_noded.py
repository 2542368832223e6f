"""Stand-in for corral-noded: answers every TCP connection on port 1811 with the hostname."""

import socket

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 1811))
server.listen(16)
while True:
    conn, _addr = server.accept()
    conn.sendall(socket.gethostname().encode() + b"\n")
    conn.close()
