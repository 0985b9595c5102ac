(** Addition is associative. *)
Theorem add_assoc : forall n m p : nat, n + (m + p) = n + m + p.
Proof.
  intros n m p. induction n as [| k IH].
  - reflexivity.
  - simpl. rewrite IH. reflexivity.
Qed.
