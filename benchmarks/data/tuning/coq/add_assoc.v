(** Addition is associative. *)
Theorem add_assoc : forall n m p : nat, n + (m + p) = n + m + p.
