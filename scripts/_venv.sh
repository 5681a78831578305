# Shared by scripts/quickstart and scripts/test: create ./.venv with Python >= 3.11, installing Debian's venv
# support first when the machine lacks it and we may use apt-get.
VENV="${VLAB_VENV:-.venv}"

find_python() {
    for py in python3.13 python3.12 python3.11 python3; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    echo "vlab needs Python 3.11 or newer (apt-get install python3)" >&2
    return 1
}

ensure_venv() {
    if [ -x "$VENV/bin/python" ]; then
        return 0
    fi
    local py
    py=$(find_python)
    if ! "$py" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            local ver
            ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            apt-get update -qq && (apt-get install -y -qq "python${ver}-venv" || apt-get install -y -qq python3-venv)
            "$py" -m venv "$VENV"
        else
            echo "cannot create a virtual environment: install python3-venv (sudo apt-get install python3-venv)" >&2
            return 1
        fi
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
}
