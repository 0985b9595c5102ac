(** A number is at most itself plus anything. *)
Theorem le_add_r : forall n m : nat, n <= n + m.
Proof.
  intros n m. induction n as [| k IH].
  - apply le_0_n.
  - simpl. apply le_n_S. exact IH.
Qed.
