(** A successor on the right of an addition moves out. *)
Theorem add_succ_r : forall n m : nat, n + S m = S (n + m).
