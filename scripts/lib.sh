# Shared by scripts/test and scripts/demo (sourced, not run).
# shellcheck shell=bash

# Every Debian package the build, the tests and the demo need.
PACKAGES=(
	gcc meson ninja-build pkg-config
	libpq-dev libmosquitto-dev libyaml-dev check libsystemd-dev
	postgresql mosquitto
	python3 python3-psycopg2
	python3-paho-mqtt	# examples/saga: the services are MQTT clients (scripts/demo saga, test_saga)
	prometheus-mqtt-exporter	# test_status_topic: a monitoring system reads the status topic
	valgrind openssl
	mandoc systemd man-db procps
	cppcheck clang-tidy clang-format
	clang libclang-rt-14-dev	# scripts/fuzz: clang only recommends the libFuzzer runtime
	build-essential dpkg-dev debhelper lintian	# tests/package/check-package: dpkg-buildpackage and lintian
	rabbitmq-server	# interop suite (tests/interop): RabbitMQ's MQTT plugin
	ejabberd	# interop suite (tests/interop): ejabberd's mod_mqtt
)

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	else
		sudo "$@"
	fi
}

package_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# Installs whatever is missing from PACKAGES; apt-get update runs only if something is.
install_dependencies() {
	local missing=() pkg
	for pkg in "${PACKAGES[@]}"; do
		package_installed "$pkg" || missing+=("$pkg")
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	echo "==> installing: ${missing[*]}"
	as_root apt-get update
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

# setup_build DIR [OPTIONS...]: configures DIR (or reconfigures it) and compiles it.
setup_build() {
	local dir=$1
	shift
	local setup=(meson setup "$dir" "$@")
	if [[ -f $dir/build.ninja ]]; then
		setup=(meson setup --reconfigure "$dir" "$@")
	fi
	"${setup[@]}" && meson compile -C "$dir"
}
