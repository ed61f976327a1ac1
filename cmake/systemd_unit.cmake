# The systemd unit from its template (examples/systemd/dockscaler.service.in)
# for one install prefix. Used when the build is configured (a unit for the
# configured prefix, and one naming the binary just built for the tests) and
# by `cmake --install`, which may be given another --prefix.

# Sets bindir, sysconfdir and docdir in the caller for `prefix`: the config
# lives in /etc for the prefix /usr, in <prefix>/etc otherwise.
function(dockscaler_unit_dirs prefix)
  if(prefix STREQUAL "/usr")
    set(sysconfdir "/etc" PARENT_SCOPE)
  else()
    set(sysconfdir "${prefix}/etc" PARENT_SCOPE)
  endif()
  set(bindir "${prefix}/bin" PARENT_SCOPE)
  set(docdir "${prefix}/share/doc/dockscaler" PARENT_SCOPE)
endfunction()

# Writes the unit for `prefix` to `out`; `bindir_override`, when given, names
# the directory of the binary instead of <prefix>/bin.
function(dockscaler_write_unit template prefix out)
  dockscaler_unit_dirs("${prefix}")
  if(ARGC GREATER 3)
    set(bindir "${ARGV3}")
  endif()
  file(READ "${template}" unit)
  string(CONFIGURE "${unit}" unit @ONLY)
  file(WRITE "${out}" "${unit}")
endfunction()
