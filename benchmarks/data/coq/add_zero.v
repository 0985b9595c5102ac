(** Adding zero on the right changes nothing. Addition recurses on its
    first argument, so this needs induction. *)
Theorem add_zero_right : forall n : nat, n + 0 = n.
