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

# The tests and the demo start their own servers in temporary directories on free ports: the
# system services these packages bring (PostgreSQL, Mosquitto, RabbitMQ, ejabberd) are not
# needed, and ejabberd's would take Mosquitto's port 1883. While installing, a policy-rc.d
# that denies every start keeps them stopped, unless the machine has a policy of its own (as
# containers do), which is left alone.
POLICY_RC=/usr/sbin/policy-rc.d

# Installs whatever is missing from PACKAGES; apt-get update runs only if something is.
install_dependencies() {
	local missing=() pkg status=0 own_policy=false
	for pkg in "${PACKAGES[@]}"; do
		package_installed "$pkg" || missing+=("$pkg")
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	echo "==> installing: ${missing[*]}"
	if [[ ! -e $POLICY_RC ]]; then
		printf '#!/bin/sh\n# outbox-relay scripts/lib.sh, while installing: no service starts\nexit 101\n' |
			as_root tee "$POLICY_RC" >/dev/null
		as_root chmod 755 "$POLICY_RC"
		own_policy=true
	fi
	as_root apt-get update || status=$?
	if ((status == 0)); then
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" || status=$?
	fi
	if $own_policy; then
		as_root rm -f "$POLICY_RC"
	fi
	return "$status"
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
