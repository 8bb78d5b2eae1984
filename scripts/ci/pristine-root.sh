#!/usr/bin/env bash
# CI stage: proves the README's first two commands on a pristine Debian 12 machine. The commit
# under test (HEAD; uncommitted changes are not part of it) is cloned into a fresh copy of a
# cached `debootstrap --variant=minbase bookworm` root, with ../shared beside it read-only, and
# each command runs there in a fresh root shell. Only apt's downloaded .debs and ccache's
# directory persist between runs; neither can make a missing install step pass.
# Usage (as root): scripts/ci/pristine-root.sh [--offline-check] [--no-overlay] [--log-dir DIR]
#   --offline-check  run the stage without network: passes only if it fails fast, naming the step
#   --no-overlay     copy the base root with cp -a instead of mounting an overlayfs over it
# Caches and logs live in /var/cache/tapegrad-ci; nothing is written to the repository.
# shellcheck disable=SC2317  # the steps run through `bash -c` and the cleanup through a trap
set -euo pipefail
export PATH=/usr/sbin:/sbin:$PATH LC_ALL=C

self=$(readlink -f "${BASH_SOURCE[0]}")
repo=$(cd "$(dirname "$self")/../.." && pwd)
shared=$(dirname "$repo")/shared
cache=/var/cache/tapegrad-ci
base=$cache/bookworm-minbase         # the pristine root, reused while younger than base_max_days
base_done=$base.complete             # written only after debootstrap succeeded
base_max_days=30                     # then rebuilt, so the base packages stay those a new user gets
runs=$cache/runs                     # one run.<pid> folder per run, deleted at its end
apt_cache=$cache/apt-archives        # bind-mounted at the root's /var/cache/apt/archives
ccache_dir=$cache/ccache             # bind-mounted at /root/.cache/ccache, ccache 4's default
inner_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

mode=stage use_overlay=1 logdir="" args=("$@")
while (($#)); do
  case $1 in
    --offline-check) mode=offline ;;
    --no-overlay) use_overlay=0 ;;
    --log-dir) logdir=${2:?--log-dir needs a folder}; shift ;;
    -h | --help) sed -n '2,10s/^# \{0,1\}//p' "$self"; exit 0 ;;
    *) echo "pristine-root: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $(id -u) == 0 ]] || { echo "pristine-root: must run as root (debootstrap, chroot, mounts)" >&2; exit 2; }

# Everything below runs in a private mount namespace: no mount made here can leak to the host,
# and all of them vanish with the last process even if this script is killed outright.
if [[ ${TG_CI_PRIVATE_MOUNTS:-} != 1 ]]; then
  export TG_CI_PRIVATE_MOUNTS=1
  exec unshare --mount --propagation private -- "$self" "${args[@]}"
fi

# ---- helpers (exported: each step runs in its own bash under `timeout`) ----

mounts_under() {  # DIR: mount points at or below DIR, parents before children
  findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1'
}

kill_procs_in() {  # DIR: kills processes whose root is inside DIR (leftovers of the commands)
  local dir=$1 p r found try
  for try in 1 2 3 4 5 6 7 8 9 10; do
    found=0
    for p in /proc/[0-9]*; do
      r=$(readlink "$p/root" 2>/dev/null) || continue
      if [[ $r == "$dir" || $r == "$dir"/* ]]; then
        kill -KILL "${p#/proc/}" 2>/dev/null && found=1
      fi
    done
    ((found)) || return 0
    echo "killed processes left in $dir (pass $try)"
    sleep 1
  done
}

remove_tree() {  # DIR: unmounts everything below DIR (deepest first), then deletes it
  local dir=$1 m
  [[ -e $dir ]] || return 0
  kill_procs_in "$dir"
  while read -r m; do
    umount "$m" 2>/dev/null || umount --lazy "$m" || true
  done < <(mounts_under "$dir" | tac)
  # rm must never walk into a bind mount of /dev or shared/: refuse while anything is mounted.
  if [[ -n $(mounts_under "$dir") ]]; then
    echo "still mounted below $dir, not deleting it:"; mounts_under "$dir"
    return 1
  fi
  rm -rf --one-file-system "$dir"
}

find_mirror() {  # the bookworm mirror of this machine's apt sources (deb822 first, then one-line)
  local m="" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    m=$(awk '
      function flush() {
        if (!found && uri != "" && enabled != "no" && (" " types " ") ~ / deb / &&
            (" " suites " ") ~ / bookworm /) { print uri; found = 1; exit }
        types = suites = uri = enabled = ""
      }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      {
        key = tolower($1); val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
        if (key == "types:") types = val
        else if (key == "suites:") suites = val
        else if (key == "uris:") { split(val, u, /[[:space:]]+/); uri = u[1] }
        else if (key == "enabled:") enabled = tolower(val)
      }
      END { flush() }' "$f")
    [[ -n $m ]] && break
  done
  if [[ -z $m ]]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [[ -f $f ]] || continue
      m=$(awk '$1 == "deb" {
          i = 2
          if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }   # skip [ options ]
          if ($(i + 1) == "bookworm") { print $i; exit }
        }' "$f")
      [[ -n $m ]] && break
    done
  fi
  echo "${m%/}"
}

# ---- the steps ----

check_mirror() {
  local tmp rc=0
  tmp=$(mktemp -d)
  echo "fetching $mirror/dists/bookworm/Release"
  /usr/lib/apt/apt-helper -o Acquire::Retries=0 -o Acquire::http::Timeout=10 \
    -o Acquire::https::Timeout=10 -o APT::Sandbox::User=root \
    download-file "$mirror/dists/bookworm/Release" "$tmp/Release" || rc=$?
  rm -rf "$tmp"
  return "$rc"
}

install_host_tools() {
  local -a missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)
  if ((${#missing[@]} == 0)); then echo "debootstrap is installed"; return 0; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

run_alive() {  # PID: is that a running stage? (not a zombie, not a reused pid)
  local pid=$1 state
  state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z && $(tr '\0' ' ' <"/proc/$pid/cmdline") == *pristine-root* ]]
}

other_runs_alive() {
  local d
  for d in "$runs"/run.*; do
    [[ -d $d && ${d##*.} != "$stage_pid" ]] && run_alive "${d##*.}" && return 0
  done
  return 1
}

make_base_root() {
  mkdir -p "$cache"
  exec 9>"$cache/base.lock"   # one builder at a time; concurrent runs wait here
  flock 9
  if [[ -f $base_done && -x $base/bin/bash ]]; then
    local age_days=$((($(date +%s) - $(stat -c %Y "$base_done")) / 86400))
    if ((age_days < base_max_days)); then
      echo "reusing $base (made $age_days days ago)"; return 0
    elif other_runs_alive; then  # their root copies still read it
      echo "reusing $base ($age_days days old; not rebuilt while another run uses it)"; return 0
    fi
    echo "$base is $age_days days old: making a new one"
  fi
  rm -f "$base_done"
  remove_tree "$base"           # a leftover of an interrupted debootstrap is redone, never reused
  echo "debootstrap --variant=minbase bookworm $base $mirror   (log: $base.log)"
  if ! debootstrap --variant=minbase bookworm "$base" "$mirror" >"$base.log" 2>&1; then
    tail -n 20 "$base.log"; return 1
  fi
  if [[ -n $(mounts_under "$base") ]]; then echo "debootstrap left mounts in $base"; return 1; fi
  cp -L /etc/resolv.conf "$base/etc/resolv.conf"
  touch "$base_done"
  echo "made $base ($(du -sh "$base" | cut -f1))"
}

make_run_root() {
  local d
  mkdir -p "$runs"
  for d in "$runs"/run.*; do  # runs killed before their cleanup (the pid is in the name)
    [[ -d $d ]] || continue
    [[ ${d##*.} != "$stage_pid" ]] && run_alive "${d##*.}" && continue
    echo "removing $d, left by an earlier run"
    remove_tree "$d"
  done
  mkdir -p "$run/root"
  if ((use_overlay)) && mkdir -p "$run/upper" "$run/work" &&
    mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" "$run/root"; then
    echo overlayfs >"$run/method"
  else
    ((use_overlay)) && echo "overlayfs mount failed: copying the base root instead"
    cp -a "$base/." "$run/root/"
    mount --bind "$run/root" "$run/root"   # a mount point, so `umount -R` takes everything below
    echo "cp -a" >"$run/method"
  fi
  echo "fresh root at $run/root ($(cat "$run/method"))"
}

clone_commit() {
  local dst=$run/root/srv/ci/project
  mkdir -p "$run/root/srv/ci"
  git -c safe.directory="$repo" clone -q --no-hardlinks --no-checkout "$repo" "$dst"
  # A detached HEAD is on no branch: fetch it explicitly then.
  git -C "$dst" cat-file -e "$sha^{commit}" 2>/dev/null || git -C "$dst" fetch -q origin HEAD
  git -C "$dst" checkout -q --detach "$sha"
  [[ $(git -C "$dst" rev-parse HEAD) == "$sha" ]]
  echo "cloned $sha to /srv/ci/project"
}

read_commands() {  # the first two non-comment lines of the README's fenced blocks, verbatim
  awk '/^[[:space:]]*```/ { inblock = !inblock; next }
       inblock && NF && $1 !~ /^#/ { print; if (++n == 2) exit }' \
    "$run/root/srv/ci/project/README.md" >"$run/commands"
  if (($(wc -l <"$run/commands") != 2)); then
    echo "README.md has fewer than two commands in fenced code blocks"; return 1
  fi
  cat -n "$run/commands"
}

mount_root() {
  local r=$run/root
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
  mount -t proc proc "$r/proc"
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
  mount --bind /dev "$r/dev"
  mount --bind /dev/pts "$r/dev/pts"   # apt and dpkg log through a pseudo-terminal
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$r/dev/shm"   # not the host's /dev/shm
  mkdir -p "$apt_cache/partial" "$r/var/cache/apt/archives"
  mount --bind "$apt_cache" "$r/var/cache/apt/archives"
  # ccache 4 reads ccache.conf from the cache dir only when CCACHE_DIR is set; without it (as
  # here) from ~/.config/ccache, so the file goes to both places. A fresh root installs the
  # compiler with a new mtime, so ccache must compare it by content.
  mkdir -p "$ccache_dir" "$r/root/.cache/ccache" "$r/root/.config/ccache"
  printf '%s\n' "# written by scripts/ci/pristine-root.sh" "compiler_check = content" \
    "max_size = 5G" >"$ccache_dir/ccache.conf"
  cp "$ccache_dir/ccache.conf" "$r/root/.config/ccache/ccache.conf"
  mount --bind "$ccache_dir" "$r/root/.cache/ccache"
  if [[ -d $shared ]]; then
    mkdir -p "$r/srv/ci/shared"
    mount --bind -o ro "$shared" "$r/srv/ci/shared"
    findmnt -n -o OPTIONS "$r/srv/ci/shared" | grep -q '^ro' || { echo "shared/ is not read-only"; return 1; }
  else
    echo "note: $shared does not exist, so /srv/ci/shared does not either"
  fi
  mounts_under "$r" | sed 's/^/mounted: /'
}

export repo shared cache base base_done base_max_days runs apt_cache ccache_dir use_overlay
export -f mounts_under kill_procs_in remove_tree check_mirror install_host_tools run_alive other_runs_alive \
  make_base_root make_run_root clone_commit read_commands mount_root

# ---- running steps, with a name and a time limit each ----

declare -a step_names=() step_results=() step_secs=()
current_step="" current_t0=0 current_pid="" tail_pid="" stage_t0=$SECONDS copy_method=none
declare -A hint=()

record() {  # NAME RC LIMIT SECONDS [RESULT]
  local name=$1 rc=$2 limit=$3 secs=$4 result=${5:-}
  if [[ -n $result ]]; then
    echo "pristine-root: step '$name' failed: $result after $secs s"
  elif ((rc == 0)); then
    result=ok
  elif ((rc == 124 || rc == 137)); then
    result="timed out"
    echo "pristine-root: step '$name' timed out after $limit s${hint[$name]:+: ${hint[$name]}}"
  else
    result="failed ($rc)"
    echo "pristine-root: step '$name' failed (exit $rc) after $secs s${hint[$name]:+: ${hint[$name]}}"
  fi
  step_names+=("$name") step_results+=("$result") step_secs+=("$secs")
}

step() {  # NAME LIMIT FUNCTION [ARGS]: in the background, so a signal reaches our trap at once
  local name=$1 limit=$2 t0=$SECONDS rc=0
  shift 2
  echo "== pristine-root: step '$name' (limit $limit s)"
  current_step=$name current_t0=$t0
  timeout --kill-after=15 "$limit" bash -c 'set -euo pipefail; "$@"' "$name" "$@" &
  current_pid=$!
  wait "$current_pid" || rc=$?
  current_pid="" current_step=""
  record "$name" "$rc" "$limit" $((SECONDS - t0))
  return "$rc"
}

run_command() {  # N LIMIT: README command N in a fresh root shell; output streamed and logged
  local i=$1 limit=$2 cmd log rc=0 t0=$SECONDS
  local name=command-$i
  cmd=$(sed -n "${i}p" "$run/commands")
  log=$logdir/$name.log
  echo "== pristine-root: step '$name' (limit $limit s): $cmd"
  : >"$log"
  current_step=$name current_t0=$t0
  timeout --kill-after=30 "$limit" chroot "$run/root" /usr/bin/env -i HOME=/root PATH="$inner_path" \
    LANG=C.UTF-8 TERM=dumb /bin/bash -c "cd /srv/ci/project && $cmd" </dev/null >"$log" 2>&1 &
  current_pid=$!
  tail -n +1 -f --pid="$current_pid" "$log" &   # streams until the command is gone
  tail_pid=$!
  wait "$current_pid" || rc=$?
  wait "$tail_pid" || true
  current_pid="" tail_pid="" current_step=""
  # timeout signalled the command's process group; what ignored that must not run into the next one
  if ((rc == 124 || rc == 137)); then kill_procs_in "$run/root"; fi
  echo "-- $name: exit $rc after $((SECONDS - t0)) s (log: $log); last lines:"
  tail -n 12 "$log" | sed 's/^/   | /'
  record "$name" "$rc" "$limit" $((SECONDS - t0))
  return "$rc"
}

summary() {  # RC
  local i
  echo "== pristine-root: summary (commit ${sha:0:12}, root copy: $copy_method)"
  for i in "${!step_names[@]}"; do
    printf '   %-14s %-16s %5d s\n' "${step_names[i]}" "${step_results[i]}" "${step_secs[i]}"
  done
  printf '   %-14s %-16s %5d s\n' total "" $((SECONDS - stage_t0))
  [[ -n $logdir && -d $logdir ]] && echo "   logs: $logdir"
  if (($1 == 0)); then echo "pristine-root: PASSED"; else echo "pristine-root: FAILED"; fi
}

on_exit() {
  local rc=$?
  trap '' INT TERM HUP   # let the cleanup finish
  if [[ -n $current_pid ]]; then  # interrupted: stop the running step (timeout signals its group)
    kill -TERM "$current_pid" 2>/dev/null || true
    wait "$current_pid" 2>/dev/null || true
    record "$current_step" 130 0 $((SECONDS - current_t0)) interrupted
  fi
  if [[ -n $tail_pid ]]; then kill "$tail_pid" 2>/dev/null || true; fi
  if [[ -n ${run:-} && -e $run ]]; then step cleanup 600 remove_tree "$run" || rc=1; fi
  if [[ -n $logdir && -d $logdir ]]; then summary "$rc" | tee "$logdir/summary.txt"; else summary "$rc"; fi
  exit "$rc"
}

offline_check() {  # the whole stage in a new, empty network namespace must fail fast and say where
  local log rc=0 t0=$SECONDS secs line
  log=$(mktemp)
  echo "== pristine-root: offline self-check: the stage without network must fail within 60 s, naming a step"
  timeout --kill-after=10 90 unshare --net -- "$self" >"$log" 2>&1 || rc=$?
  secs=$((SECONDS - t0))
  sed 's/^/   | /' "$log"
  line=$(grep -m1 "^pristine-root: step '.*' \(failed\|timed out\)" "$log" || true)
  rm -f "$log"
  if ((rc != 0 && rc != 124 && rc != 137 && secs <= 60)) && [[ $line == *"step 'mirror-check'"* ]]; then
    echo "pristine-root: offline self-check passed: without network the stage failed after $secs s with:"
    echo "   $line"
  else
    echo "pristine-root: step 'offline-check' failed: without network the stage exited $rc after $secs s," \
      "expected a quick failure of step 'mirror-check' (got: ${line:-no step message})"
    return 1
  fi
}

if [[ $mode == offline ]]; then offline_check; exit; fi

stage_pid=$$
run=""
sha=$(git -c safe.directory="$repo" -C "$repo" rev-parse HEAD)
export stage_pid sha
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

echo "== pristine-root: commit $sha of $repo"
[[ -z $(git -c safe.directory="$repo" -C "$repo" status --porcelain --untracked-files=no) ]] ||
  echo "note: uncommitted changes in $repo are not part of this run; commit $sha is"

mirror=$(find_mirror)
export mirror
if [[ -z $mirror ]]; then
  hint[mirror-check]="no bookworm 'deb' source in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
  record mirror-check 1 0 0
  exit 1
fi
hint[mirror-check]="the Debian mirror $mirror does not answer (no network?)"
hint[base-root]="debootstrap failed; its log is $base.log"
step mirror-check 30 check_mirror || exit 1
step host-tools 600 install_host_tools || exit 1
step base-root 1200 make_base_root || exit 1

run=$runs/run.$$
export run
step fresh-root 900 make_run_root || exit 1
copy_method=$(cat "$run/method")
step clone 300 clone_commit || exit 1
step read-readme 30 read_commands || exit 1
step mounts 60 mount_root || exit 1

logdir=${logdir:-$cache/logs/$(date -u +%Y%m%dT%H%M%SZ)-${sha:0:12}}
mkdir -p "$logdir"
find "$cache/logs" -mindepth 1 -maxdepth 1 -type d -mtime +30 -exec rm -rf {} + 2>/dev/null || true
status=0
run_command 1 1800 || status=1   # command 2 runs anyway, so both are reported
run_command 2 3600 || status=1
exit "$status"
