"""Operations on a whole store file: verify (read-only check) and compact (rewrite)."""
