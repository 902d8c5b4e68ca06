"""PIPL rights of the data subject: access and portability (export), deletion (Arts. 45, 47)."""
