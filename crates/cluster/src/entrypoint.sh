# gpudev dev box entrypoint (POSIX sh, so it runs on Debian, RHEL and Alpine based images).
#
# It runs as root only long enough to set the box up and start sshd; every login is the
# unprivileged user `dev`. See the `pod` module of gpudev-cluster for the security reasoning.
#
# The Pod provides:
#   /etc/gpudev/secret/authorized_keys  the user's public keys (Secret volume, read-only)
#   /etc/gpudev/secret/command          the reservation's start command, when it has one
#   /etc/gpudev/secret/jupyter          the Jupyter token while Jupyter is enabled, else empty
#   /etc/gpudev/secret/agent-token      the agent's token, when the platform runs the agent
#   /opt/gpudev/bin/gpudev-agent        gpudev's agent, copied in by an init container
#   /run/gpudev                         memory-backed emptyDir for runtime files
#   /home/dev                           the user's disk or an emptyDir
#   GPUDEV_* variables, the user's variables (from the Secret)
set -eu

DEV_USER=dev
DEV_UID=1081
DEV_HOME=/home/dev
RUN=/run/gpudev
SECRET_DIR=/etc/gpudev/secret
KEYS_SRC=$SECRET_DIR/authorized_keys

log() { echo "gpudev-entrypoint: $*" >&2; }

# The user's variables may replace PATH; the set-up below still needs the system tools. The
# image's (or user's) PATH is restored before it is handed to logins.
image_path="${PATH:-}"
PATH="${PATH:+$PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# 1. Packages. sshd is required; sudo is a convenience.
missing=""
[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
command -v sudo >/dev/null 2>&1 || missing="$missing sudo"
if [ -n "$missing" ]; then
    log "installing:$missing"
    if command -v apt-get >/dev/null 2>&1; then
        # Word splitting of the package list is intended (SC2086); a failure of either command
        # is only logged (SC2015).
        # shellcheck disable=SC2086,SC2015
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing ||
            log "apt-get install failed"
    elif command -v dnf >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        dnf install -y -q $missing || log "dnf install failed"
    elif command -v yum >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        yum install -y -q $missing || log "yum install failed"
    elif command -v apk >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        apk add --no-cache -q $missing || log "apk add failed"
    fi
fi
if [ ! -x /usr/sbin/sshd ]; then
    log "the image has no /usr/sbin/sshd and it could not be installed"
    exit 1
fi

# 2. The unprivileged user. A fixed uid keeps files on a persistent disk owned by dev from one
# reservation (and image) to the next.
shell=/bin/sh
[ -x /bin/bash ] && shell=/bin/bash
if ! id "$DEV_USER" >/dev/null 2>&1; then
    if command -v useradd >/dev/null 2>&1; then
        useradd -u "$DEV_UID" -U -d "$DEV_HOME" -M -s "$shell" "$DEV_USER" 2>/dev/null ||
            useradd -U -d "$DEV_HOME" -M -s "$shell" "$DEV_USER" 2>/dev/null ||
            useradd -g "$DEV_USER" -d "$DEV_HOME" -M -s "$shell" "$DEV_USER"
    else
        addgroup -g "$DEV_UID" "$DEV_USER" 2>/dev/null || addgroup "$DEV_USER" 2>/dev/null || true
        adduser -D -H -h "$DEV_HOME" -s "$shell" -G "$DEV_USER" -u "$DEV_UID" "$DEV_USER" 2>/dev/null ||
            adduser -D -H -h "$DEV_HOME" -s "$shell" -G "$DEV_USER" "$DEV_USER"
    fi
fi
# sshd refuses even key logins to a locked account ("!" in the password field); "*" means
# "no password can match" without locking.
usermod -p '*' "$DEV_USER" 2>/dev/null ||
    sed -i "s/^$DEV_USER:![^:]*:/$DEV_USER:*:/" /etc/shadow 2>/dev/null || true
dev_group="$(id -gn "$DEV_USER")"

if command -v sudo >/dev/null 2>&1 && [ -d /etc/sudoers.d ]; then
    echo "$DEV_USER ALL=(ALL) NOPASSWD:ALL" >/etc/sudoers.d/gpudev-dev
    chmod 0440 /etc/sudoers.d/gpudev-dev
fi

# 3. Home. A new disk or an emptyDir is owned by root; only the top is chowned, because a
# disk from an earlier reservation already belongs to dev and a recursive chown of a large
# disk would delay every start.
mkdir -p "$DEV_HOME"
chown "$DEV_USER:$dev_group" "$DEV_HOME"
chmod 0755 "$DEV_HOME"
if [ -d /etc/skel ]; then
    for f in /etc/skel/.[!.]* /etc/skel/*; do
        [ -e "$f" ] || continue
        target="$DEV_HOME/${f##*/}"
        if [ ! -e "$target" ]; then
            cp -R "$f" "$target"
            chown -R "$DEV_USER:$dev_group" "$target"
        fi
    done
fi
chmod 1777 /dev/shm 2>/dev/null || true

# 4. Runtime directory: an emptyDir is world-writable when mounted. sshd's StrictModes accepts
# the key file in it only if it and every parent is owned by root and writable by root alone.
mkdir -p "$RUN"
chown 0:0 "$RUN"
chmod 0755 "$RUN"
chmod go-w /run 2>/dev/null || true

# 5. The environment of logins. sshd starts sessions with a clean environment, so the
# container's (the image's PATH and CUDA variables, the user's variables from the Secret, the
# GPUDEV_* facts) is written out once, in memory only, readable by dev only, and sourced by
# login shells and by bash's rc file.
umask 077
(
    PATH="$image_path"
    unset HOME PWD OLDPWD SHLVL HOSTNAME USER LOGNAME SHELL MAIL TERM 2>/dev/null || true
    export -p
) >"$RUN/env.sh"
chown "$DEV_USER:$dev_group" "$RUN/env.sh"
chmod 0400 "$RUN/env.sh"
umask 022
hook="[ -r $RUN/env.sh ] && . $RUN/env.sh # gpudev environment"
if [ -d /etc/profile.d ]; then
    printf '%s\n' "$hook" >/etc/profile.d/gpudev.sh
fi
if [ -f /etc/bash.bashrc ] && ! grep -q 'gpudev environment' /etc/bash.bashrc; then
    # First, before any "not interactive: return" line, so `ssh box command` gets it too.
    { printf '%s\n' "$hook"; cat /etc/bash.bashrc; } >"$RUN/bash.bashrc.new"
    cat "$RUN/bash.bashrc.new" >/etc/bash.bashrc
    rm -f "$RUN/bash.bashrc.new"
fi

# 6. sshd. The keys live outside the home, so a persistent disk never keeps a key after it is
# removed from the Secret, and they are re-read from the Secret every 30 s, so keys added to
# the Secret (a second user) work without a restart.
install_keys() {
    cat "$KEYS_SRC" >"$RUN/authorized_keys.new"
    chmod 0644 "$RUN/authorized_keys.new"
    mv -f "$RUN/authorized_keys.new" "$RUN/authorized_keys"
}
install_keys
(
    while sleep 30; do
        install_keys 2>/dev/null || true
    done
) &

ssh-keygen -A >/dev/null
mkdir -p /run/sshd /var/empty
chmod 0755 /run/sshd
cat >"$RUN/sshd_config" <<EOF
Port 22
PermitRootLogin no
AllowUsers $DEV_USER
PubkeyAuthentication yes
AuthorizedKeysFile $RUN/authorized_keys .ssh/authorized_keys
PasswordAuthentication no
PermitEmptyPasswords no
ChallengeResponseAuthentication no
X11Forwarding no
AllowTcpForwarding yes
PrintMotd no
PidFile $RUN/sshd.pid
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -t -f "$RUN/sshd_config"

# 7. Jupyter, as dev, for as long as the Secret's `jupyter` file holds a token: the processor
# writes the token there when Jupyter is enabled and empties the file when it is disabled, and
# the kubelet refreshes the mounted file within about a minute, so Jupyter starts and stops on
# a running box. Checked every GPUDEV_JUPYTER_POLL_SECONDS (10); restarted if it exits. It runs
# in its own session, so stopping it stops its kernels too. It is installed into the home on
# first use when the image lacks it (and so stays on a persistent disk).
JUPYTER_SRC=$SECRET_DIR/jupyter
jupyter_poll="${GPUDEV_JUPYTER_POLL_SECONDS:-10}"
session=""
command -v setsid >/dev/null 2>&1 && session=setsid
start_jupyter() {
    (umask 077 && cat "$JUPYTER_SRC" >"$RUN/jupyter-token")
    chown "$DEV_USER:$dev_group" "$RUN/jupyter-token"
    # shellcheck disable=SC2016 # expanded by dev's shell, not this one
    $session su -s /bin/sh "$DEV_USER" -c '
        . /run/gpudev/env.sh
        HOME=/home/dev
        export HOME PATH="$HOME/.local/bin:$PATH"
        cd "$HOME"
        if ! command -v jupyter >/dev/null 2>&1; then
            python3 -m pip install --user --quiet jupyterlab || exit 1
        fi
        exec jupyter lab --no-browser --ip=0.0.0.0 --port=8888 \
            --ServerApp.token="$(cat /run/gpudev/jupyter-token)" \
            --ServerApp.allow_remote_access=True \
            --ServerApp.root_dir="$HOME"
    ' &
    jupyter_pid=$!
}
stop_jupyter() {
    kill -s TERM -- "-$jupyter_pid" 2>/dev/null || kill -s TERM "$jupyter_pid" 2>/dev/null || true
    rm -f "$RUN/jupyter-token"
}
(
    jupyter_pid=""
    while :; do
        if [ -s "$JUPYTER_SRC" ]; then
            if [ -z "$jupyter_pid" ] || ! kill -0 "$jupyter_pid" 2>/dev/null; then
                [ -n "$jupyter_pid" ] && log "jupyter exited; restarting"
                start_jupyter
                log "jupyter started"
            fi
        elif [ -n "$jupyter_pid" ]; then
            stop_jupyter
            jupyter_pid=""
            log "jupyter stopped"
        fi
        sleep "$jupyter_poll"
    done
) &

# 8. gpudev's agent, when the Pod brought it: it reports sessions, Jupyter connections and GPU
# use to the API once a minute so an idle box can be released (ADR 18). It runs as dev, with
# its token and Jupyter's token copied to memory readable by dev only, and is restarted if it
# exits.
AGENT_BIN=/opt/gpudev/bin/gpudev-agent
if [ -x "$AGENT_BIN" ] && [ -r "$SECRET_DIR/agent-token" ] && [ -n "${GPUDEV_AGENT_URL:-}" ]; then
    (umask 077 && cat "$SECRET_DIR/agent-token" >"$RUN/agent-token")
    chown "$DEV_USER:$dev_group" "$RUN/agent-token"
    (
        while :; do
            su -s /bin/sh "$DEV_USER" -c "GPUDEV_AGENT_TOKEN_FILE=$RUN/agent-token \
                GPUDEV_AGENT_JUPYTER_TOKEN_FILE=$RUN/jupyter-token exec $AGENT_BIN" ||
                log "agent exited with status $?"
            sleep "${GPUDEV_AGENT_RESTART_SECONDS:-10}"
        done
    ) &
    log "agent started"
fi

# 9. The reservation's command, when it has one: run once per container start, as dev, with
# the login environment, from the home directory, after the set-up above. Its output goes to
# the container's log. sshd stays in the foreground, so the box stays reachable whatever the
# command does; the reservation ends at its expiry as usual. The command came through the
# Secret (it may hold tokens) and is copied to memory, readable by dev only.
if [ -r "$SECRET_DIR/command" ]; then
    (umask 077 && cat "$SECRET_DIR/command" >"$RUN/command")
    chown "$DEV_USER:$dev_group" "$RUN/command"
    chmod 0500 "$RUN/command"
    (
        if su -s /bin/sh "$DEV_USER" -c \
            ". $RUN/env.sh; HOME=$DEV_HOME; export HOME; cd \"\$HOME\"; exec $shell $RUN/command"; then
            log "command finished"
        else
            log "command exited with status $?"
        fi
    ) &
    log "command started"
fi

log "starting sshd"
exec /usr/sbin/sshd -D -e -f "$RUN/sshd_config"
