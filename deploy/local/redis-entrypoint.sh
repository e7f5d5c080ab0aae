#!/bin/sh
# The official image compiles redis-server with protected mode off (the container's network
# is the boundary); Debian's is compiled with it on, which refuses every other container.
if [ "$1" = redis-server ]; then
    set -- "$@" --protected-mode no
fi
exec "$@"
