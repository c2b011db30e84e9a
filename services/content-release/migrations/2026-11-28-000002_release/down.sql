DROP TABLE curriculum_state;
DROP TABLE releases;
DROP TABLE attendances;
DROP TABLE module_accesses;
DROP TABLE scope_changes;
DROP TABLE revocations;
DROP TABLE holds;
DROP TABLE learners;
