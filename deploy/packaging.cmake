# Debian packages, built with CPack (`cpack -G DEB` in a build directory), included from the
# top-level CMakeLists.txt. Two packages, one per CMake component:
#
#   opendms-field    /usr/bin/opendms-field, /usr/lib/opendms-field/libopendms_db_{pgsql,mysql}.so
#                    (database drivers, loaded when DB_CONNECTION names them),
#                    /lib/systemd/system/opendms-field.service,
#                    /etc/opendms/field.env (example, conffile, 0640 root:opendms),
#                    /usr/share/opendms/mosquitto/field-broker.conf, docs
#   opendms-central  /usr/bin/opendms-central, /usr/lib/opendms-central/libopendms_db_*.so,
#                    /lib/systemd/system/opendms-central.service,
#                    /etc/opendms/central.env (example, conffile, 0640 root:opendms),
#                    /usr/share/opendms/nginx/opendms-central.conf, docs
#
# Maintainer scripts (deploy/debian/*.in): postinst creates the system user "opendms" and
# /var/lib/opendms (0750), enables the service and starts it only once the env file no longer
# carries its OPENDMS_UNCONFIGURED line; prerm stops it on removal; postrm purge removes the
# user and the data once no OpenDMS package is left. Depends from dpkg-shlibdeps plus adduser
# and init-system-helpers. Tested by tests/ops/packages_test.sh (dpkg -i, check, purge).
#
# The install rules below belong to the components only (EXCLUDE_FROM_ALL): a plain
# `cmake --install` still installs just the two binaries under its prefix, never into /etc.

set(OPENDMS_DEB_DIR ${CMAKE_CURRENT_LIST_DIR}/debian)

foreach(component field central)
  if(component STREQUAL "field")
    set(target opendms-field)
    set(data_files "/var/lib/opendms/field.sqlite /var/lib/opendms/field.sqlite-wal /var/lib/opendms/field.sqlite-shm /var/lib/opendms/field.sqlite.push.lock")
    set(shipped ${CMAKE_CURRENT_LIST_DIR}/mosquitto/field-broker.conf)
    set(shipped_dir share/opendms/mosquitto)
  else()
    set(target opendms-central)
    set(data_files "/var/lib/opendms/central.sqlite /var/lib/opendms/central.sqlite-wal /var/lib/opendms/central.sqlite-shm")
    set(shipped ${CMAKE_CURRENT_LIST_DIR}/nginx/opendms-central.conf)
    set(shipped_dir share/opendms/nginx)
  endif()

  install(TARGETS ${target} RUNTIME DESTINATION bin COMPONENT ${component} EXCLUDE_FROM_ALL)
  install(TARGETS opendms_db_pgsql opendms_db_mysql LIBRARY DESTINATION lib/${target}
          COMPONENT ${component} EXCLUDE_FROM_ALL)
  install(FILES ${CMAKE_CURRENT_LIST_DIR}/systemd/${target}.service
          DESTINATION /lib/systemd/system COMPONENT ${component} EXCLUDE_FROM_ALL)
  install(FILES ${OPENDMS_DEB_DIR}/${component}.env DESTINATION /etc/opendms
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ COMPONENT ${component} EXCLUDE_FROM_ALL)
  install(FILES ${shipped} DESTINATION ${shipped_dir} COMPONENT ${component} EXCLUDE_FROM_ALL)
  install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/operations.md
                ${PROJECT_SOURCE_DIR}/docs/configuration.md ${PROJECT_SOURCE_DIR}/docs/architecture.md
          DESTINATION share/doc/${target} COMPONENT ${component} EXCLUDE_FROM_ALL)

  # The maintainer scripts and the conffiles list of this package.
  set(PKG ${target})
  set(SERVICE ${target}.service)
  set(ENV /etc/opendms/${component}.env)
  set(DATA_FILES ${data_files})
  set(control ${PROJECT_BINARY_DIR}/deb/${component})
  foreach(script postinst prerm postrm)
    configure_file(${OPENDMS_DEB_DIR}/${script}.in ${control}/${script} @ONLY)
  endforeach()
  file(WRITE ${control}/conffiles "${ENV}\n")
  string(TOUPPER ${component} COMP)
  set(CPACK_DEBIAN_${COMP}_PACKAGE_NAME ${target})
  set(CPACK_DEBIAN_${COMP}_FILE_NAME DEB-DEFAULT)
  set(CPACK_DEBIAN_${COMP}_PACKAGE_CONTROL_EXTRA
      "${control}/postinst;${control}/prerm;${control}/postrm;${control}/conffiles")
  set(CPACK_DEBIAN_${COMP}_PACKAGE_DEPENDS "adduser, init-system-helpers")
endforeach()

set(CPACK_DEBIAN_FIELD_PACKAGE_SECTION net)
set(CPACK_DEBIAN_FIELD_PACKAGE_RECOMMENDS "mosquitto")
set(CPACK_COMPONENT_FIELD_DESCRIPTION
    "OpenDMS field node: LoRa mesh messages from MQTT, stored and forwarded
opendms-field takes every message a ClusterDuck PapaDuck gateway publishes on the
local Mosquitto broker, stores it in SQLite before acknowledging it, and delivers it
over HTTPS to the central server, retrying for ever. It replaces the Laravel OpenDMS
queue worker and keeps its database and .env variable names.")
set(CPACK_DEBIAN_CENTRAL_PACKAGE_SECTION net)
set(CPACK_DEBIAN_CENTRAL_PACKAGE_RECOMMENDS "nginx")
set(CPACK_COMPONENT_CENTRAL_DESCRIPTION
    "OpenDMS central server: HTTPS ingest of field node records
opendms-central answers POST /api/ingest (Bearer tokens, idempotent by record uuid,
batches) and stores the records in PostgreSQL or MySQL/MariaDB, normally behind nginx.
It keeps the Laravel OpenDMS ingest contract and database.")

set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL field central)
set(CPACK_PACKAGE_NAME opendms)
set(CPACK_PACKAGE_VENDOR "OpenDMS")
set(CPACK_PACKAGE_CONTACT "OpenDMS maintainers <maintainers@opendms.invalid>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_STRIP_FILES ON)
# Absolute destinations (/etc, /lib/systemd) are intended: they are the packages' layout.
set(CPACK_WARN_ON_ABSOLUTE_INSTALL_DESTINATION OFF)
include(CPack)
